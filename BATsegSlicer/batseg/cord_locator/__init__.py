"""The cord locator: the first stage of BATseg's cascade.

A small 2-D network segments the spinal cord on every sagittal slice of a scan at a coarse
in-plane spacing (`planes`, `network`). Its mask lets the tumour network run on a box around the
canal only (`batseg.inference.canal_crop`) without a mask from the user, fills the lesion
report's inside/outside-the-cord field, and lets `contrast_check` compare the cord with the fluid
around it (on T2 the fluid is brighter than the cord; on T1 it is darker). The locator is stored in
its own file (`locator_file`: zip of manifest + safetensors, never pickles) and trained by
`training` (`scripts/train_cord_locator.py`).
"""
