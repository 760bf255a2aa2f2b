"""Training BATseg on nnU-Net v2: planning, preprocessing, the trainer, fine-tuning and packaging.

The real `nnunetv2` package does the work; this package subclasses and drives it:
- `workdir`: nnU-Net's folder environment variables, set for this process and its children;
- `datasets`: a plain nnU-Net raw dataset folder anywhere -> DatasetNNN_Name in the work dir;
- `splits`: 5-fold cross-validation folds stratified by tumour type (splits_final.json);
- `plans`: the default plan (topology, spacing, z-score, patch, batch) over nnU-Net's planner;
- `field_transform`: the boundary target, computed in the data-augmentation workers;
- `options`: the run options, carried inside the plans so DDP child processes see them;
- `trainer`: `nnUNetTrainerBATseg`, nnU-Net's trainer with the field head and boundary loss;
- `ddp`: multi-GPU training through nnU-Net's own DDP helpers;
- `initial_weights`: a run starting from a model file's weights (one rule for both paths);
- `run`: the driver behind `batseg train`;
- `package`: an nnU-Net results folder -> a `.batseg` model file;
- `fold_metrics`: the paper's metrics on each cross-validation fold's held-out cases;
- `finetune`: fine-tuning a model file on new cases with replay of the original data;
- `replay`: the lineage's original data and earlier rounds' cases, found or regenerated;
- `budget`: a fine-tuning's budget, inherited from its parent, and its expected duration.

Heavy imports (torch, nnunetv2) happen inside these modules, never in `batseg.cli`.
"""
