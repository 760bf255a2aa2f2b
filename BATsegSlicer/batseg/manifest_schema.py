"""Validation of a model file's manifest before anything is built from it.

A manifest is untrusted input: a `.batseg` file may come from anyone. nnU-Net rebuilds its
network from plans by importing class names given as dotted paths (`pydoc.locate` on
`conv_op`, `norm_op`, `dropout_op`, `nonlin`, `network_class_name`) and looks up its
preprocessing, resampling, reader and label-manager classes by name; a manifest naming
`os.system` as the non-linearity would run a command when the network is built. So every
name nnU-Net would import is checked against an explicit allow-list, every value that
reaches a constructor is checked for type and range, and unknown keys in those places are
refused. Sizes are bounded so that a manifest cannot make the engine allocate without
limit before the weights are compared with the architecture (`model_file.load_model`
compares tensor shapes from the safetensors header on a storage-free network).

Pure Python: importable without torch or nnU-Net (the Slicer module validates files in its
own process). Every failure raises `ModelFileError` with one line naming the field.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from batseg.errors import ModelFileError
from batseg.postprocess_settings import MAX_MIN_ENHANCEMENT, MAX_MIN_TUMOUR_PROBABILITY

# The only classes a manifest may name (both spellings nnU-Net writes are accepted).
ALLOWED_CLASSES: dict[str, frozenset[str]] = {
    "conv_op": frozenset({"torch.nn.modules.conv.Conv3d", "torch.nn.Conv3d"}),
    "norm_op": frozenset({
        "torch.nn.modules.instancenorm.InstanceNorm3d", "torch.nn.InstanceNorm3d",
        "torch.nn.modules.batchnorm.BatchNorm3d", "torch.nn.BatchNorm3d",
    }),
    "dropout_op": frozenset({"torch.nn.modules.dropout.Dropout3d", "torch.nn.Dropout3d"}),
    "nonlin": frozenset({
        "torch.nn.LeakyReLU", "torch.nn.modules.activation.LeakyReLU",
        "torch.nn.ReLU", "torch.nn.modules.activation.ReLU",
    }),
}
NETWORK_CLASS = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
# Names nnU-Net resolves inside its own packages from a plans dict.
ALLOWED_PLAN_NAMES: dict[str, frozenset[str]] = {
    "preprocessor_name": frozenset({"DefaultPreprocessor"}),
    "resampling_fn_data": frozenset({"resample_data_or_seg_to_shape"}),
    "resampling_fn_seg": frozenset({"resample_data_or_seg_to_shape"}),
    "resampling_fn_probabilities": frozenset({"resample_data_or_seg_to_shape"}),
    "image_reader_writer": frozenset({"SimpleITKIO", "NibabelIO", "NibabelIOWithReorient"}),
    "label_manager": frozenset({"LabelManager"}),
    "normalization_schemes": frozenset({"ZScoreNormalization"}),
}
# Keyword arguments of each allowed class a manifest may set, with their checks.
_NORM_KWARGS = {"eps": "positive", "affine": "bool", "momentum": "fraction", "track_running_stats": "bool"}
_DROPOUT_KWARGS = {"p": "fraction", "inplace": "bool"}
_NONLIN_KWARGS = {"inplace": "bool", "negative_slope": "finite"}
_RESAMPLING_KWARGS = {"is_seg": "bool", "order": "order", "order_z": "order", "force_separate_z": "optional_bool"}

MAX_STAGES = 10
MAX_FEATURES = 1024
MAX_KERNEL = 7
MAX_STRIDE = 4
MAX_CONVS = 8
MAX_CLASSES = 64
MAX_CHANNELS = 16
MAX_PATCH = 1024
MAX_SPACING_MM = 50.0
MAX_TRUNCATION = 1e3
# Activations of the field head (network.FIELD_ACTIVATIONS; repeated here to stay torch-free).
FIELD_ACTIVATIONS = frozenset({"sigmoid", "tanh", "linear"})
# Bound on the network's parameter count (the paper topology has about 31 million); it keeps a
# manifest from sizing a network of hundreds of GB before its weights are compared.
MAX_PARAMETERS = 200_000_000
SHA256 = re.compile(r"[0-9a-f]{64}")


class _Checker:
    """Collects the dotted location of the value being checked, for one-line messages."""

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name

    def fail(self, where: str, what: str) -> None:
        raise ModelFileError(f"{self.file_name}: manifest field {where} {what}; the model file is invalid, do not use it")

    def dict(self, value: Any, where: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"must be an object, not {type(value).__name__}")
        if allowed is not None and set(value) - allowed:
            self.fail(where, f"has unknown keys {sorted(set(value) - allowed)}")
        return value

    def int(self, value: Any, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(where, f"must be an integer from {low} to {high}, not {value!r:.60}")
        return value

    def number(self, value: Any, where: str, low: float, high: float, low_open: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value > high or value < low or (low_open and value == low):
            bound = f"above {low}" if low_open else f"from {low}"
            self.fail(where, f"must be a finite number {bound} to {high}, not {value!r:.60}")
        return float(value)

    def str(self, value: Any, where: str, choices: frozenset[str] | None = None) -> str:
        if not isinstance(value, str) or len(value) > 10_000:
            self.fail(where, f"must be a text, not {type(value).__name__}")
        if choices is not None and value not in choices:
            self.fail(where, f"names {value!r:.80}, which is not allowed (allowed: {', '.join(sorted(choices))})")
        return value

    def list(self, value: Any, where: str, length: int | None = None, item: Callable[[Any, str], Any] | None = None) -> list[Any]:
        # Tuples too: a manifest is validated before it is written as JSON (which makes them lists).
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            self.fail(where, f"must be a list{f' of {length} items' if length is not None else ''}")
        if item is not None:
            for i, entry in enumerate(value):
                item(entry, f"{where}[{i}]")
        return value

    def kwargs(self, value: Any, where: str, spec: dict[str, str]) -> None:
        """A keyword-argument dict of an allowed class: known keys, each of the right kind."""
        kinds: dict[str, Callable[[Any, str], Any]] = {
            "bool": lambda v, w: v if isinstance(v, bool) else self.fail(w, "must be true or false"),
            "optional_bool": lambda v, w: v if v is None or isinstance(v, bool) else self.fail(w, "must be true, false or null"),
            "positive": lambda v, w: self.number(v, w, 0.0, 1.0, low_open=True),
            "fraction": lambda v, w: self.number(v, w, 0.0, 1.0),
            "finite": lambda v, w: self.number(v, w, -1e3, 1e3),
            "order": lambda v, w: self.int(v, w, 0, 5),
        }
        for key, entry in self.dict(value, where, set(spec)).items():
            kinds[spec[key]](entry, f"{where}.{key}")


def _check_class(check: _Checker, arch: dict[str, Any], key: str, where: str, spec: dict[str, str]) -> None:
    """An allow-listed class name (or null where the class is optional) and its keyword arguments."""
    value, kwargs_key = arch.get(key), f"{key}_kwargs"
    optional = key == "dropout_op"
    if value is None and optional:
        if arch.get(kwargs_key) not in (None, {}):
            check.fail(f"{where}.{kwargs_key}", f"must be null when {key} is null")
        return
    check.str(value, f"{where}.{key}", ALLOWED_CLASSES[key])
    if kwargs_key in arch and arch[kwargs_key] is not None:
        check.kwargs(arch[kwargs_key], f"{where}.{kwargs_key}", spec)


def parameter_bound(arch: dict[str, Any], input_channels: int, num_classes: int) -> int:
    """An upper bound of a PlainConvUNet's parameter count from its plans-style arguments."""
    features, kernels = arch["features_per_stage"], arch["kernel_sizes"]
    total, previous = 0, input_channels
    for stage, width in enumerate(features):
        volume = math.prod(kernels[stage])
        convs = arch["n_conv_per_stage"][stage]
        total += (previous * width + (convs - 1) * width * width) * volume + 4 * width * convs
        previous = width
    decoder = arch.get("n_conv_per_stage_decoder") or [2] * (len(features) - 1)
    for stage in range(len(features) - 1, 0, -1):
        width, volume = features[stage - 1], math.prod(kernels[stage - 1])
        convs = decoder[len(features) - 1 - stage]
        total += features[stage] * width * math.prod(arch["strides"][stage])  # transposed convolution
        total += (2 * width * width + (convs - 1) * width * width) * volume + 4 * width * convs
        total += (width + 1) * num_classes  # segmentation layer (all of them with deep supervision)
    return total


def check_arch_kwargs(check: _Checker, arch: Any, where: str, input_channels: int = 1, num_classes: int = 5) -> None:
    """PlainConvUNet keyword arguments: allow-listed classes, bounded sizes, nothing else."""
    allowed = {"n_stages", "features_per_stage", "kernel_sizes", "strides", "n_conv_per_stage",
               "n_conv_per_stage_decoder", "conv_bias", "nonlin_first", *ALLOWED_CLASSES,
               *(f"{k}_kwargs" for k in ALLOWED_CLASSES if k != "conv_op")}
    arch = check.dict(arch, where, allowed)
    stages = check.int(arch.get("n_stages"), f"{where}.n_stages", 1, MAX_STAGES)
    triple = lambda high: lambda v, w: check.list(v, w, 3, lambda x, y: check.int(x, y, 1, high))  # noqa: E731
    check.list(arch.get("features_per_stage"), f"{where}.features_per_stage", stages,
               lambda v, w: check.int(v, w, 1, MAX_FEATURES))
    check.list(arch.get("kernel_sizes"), f"{where}.kernel_sizes", stages, triple(MAX_KERNEL))
    check.list(arch.get("strides"), f"{where}.strides", stages, triple(MAX_STRIDE))
    check.list(arch.get("n_conv_per_stage"), f"{where}.n_conv_per_stage", stages,
               lambda v, w: check.int(v, w, 1, MAX_CONVS))
    if arch.get("n_conv_per_stage_decoder") is not None:
        check.list(arch["n_conv_per_stage_decoder"], f"{where}.n_conv_per_stage_decoder", stages - 1,
                   lambda v, w: check.int(v, w, 1, MAX_CONVS))
    for key in ("conv_bias", "nonlin_first"):
        if key in arch and not isinstance(arch[key], bool):
            check.fail(f"{where}.{key}", "must be true or false")
    check.str(arch.get("conv_op"), f"{where}.conv_op", ALLOWED_CLASSES["conv_op"])
    _check_class(check, arch, "norm_op", where, _NORM_KWARGS)
    _check_class(check, arch, "dropout_op", where, _DROPOUT_KWARGS)
    _check_class(check, arch, "nonlin", where, _NONLIN_KWARGS)
    if parameter_bound(arch, input_channels, num_classes) > MAX_PARAMETERS:
        check.fail(where, f"describes a network of more than {MAX_PARAMETERS:,} parameters")


def _check_architecture(check: _Checker, arch: Any) -> None:
    arch = check.dict(arch, "architecture")
    check.str(arch.get("topology"), "architecture.topology")
    classes = check.int(arch.get("num_classes"), "architecture.num_classes", 2, MAX_CLASSES)
    channels = check.int(arch.get("input_channels"), "architecture.input_channels", 1, MAX_CHANNELS)
    check_arch_kwargs(check, arch.get("arch_kwargs"), "architecture.arch_kwargs", channels, classes)
    head = arch.get("field_head")
    if head is not None:
        _check_field_head(check, check.dict(head, "architecture.field_head"))


def _check_field_head(check: _Checker, head: dict[str, Any]) -> None:
    """Channels, activation, names, and the field's truncation and normalisation (the paper's
    Table 5 ablations): truncation null means none, a number must be finite and positive; an
    unnormalised field (signed mm) needs a linear head, and an untruncated one is unnormalised."""
    where = "architecture.field_head"
    check.int(head.get("channels"), f"{where}.channels", 1, MAX_CLASSES)
    activation = check.str(head.get("activation", "sigmoid"), f"{where}.activation", FIELD_ACTIVATIONS)
    for key in ("variant", "loss", "target"):
        if key in head:
            check.str(head[key], f"{where}.{key}")
    truncation = head.get("truncation", 1.0)  # older manifests: the paper's t = 1
    if truncation is not None:
        check.number(truncation, f"{where}.truncation", 0.0, MAX_TRUNCATION, low_open=True)
    normalised = head.get("normalised", True)  # older manifests: normalised
    if not isinstance(normalised, bool):
        check.fail(f"{where}.normalised", "must be true or false")
    if not normalised and activation != "linear":
        check.fail(f"{where}.activation", f"must be linear for an unnormalised field, not {activation!r}")
    if truncation is None and normalised:
        check.fail(f"{where}.truncation", "is null (no truncation), which needs normalised false")


def _check_input(check: _Checker, settings: Any) -> None:
    settings = check.dict(settings, "input")
    check.str(settings.get("contrast"), "input.contrast")
    check.str(settings.get("normalization"), "input.normalization", frozenset({"zscore"}))
    check.list(settings.get("target_spacing"), "input.target_spacing", 3,
               lambda v, w: check.number(v, w, 0.0, MAX_SPACING_MM, low_open=True))
    check.list(settings.get("patch_size"), "input.patch_size", 3, lambda v, w: check.int(v, w, 1, MAX_PATCH))
    orientation = settings.get("orientation")
    if isinstance(orientation, dict):
        for key in ("transpose_forward", "transpose_backward"):
            if key in orientation and sorted(check.list(orientation[key], f"input.orientation.{key}", 3)) != [0, 1, 2]:
                check.fail(f"input.orientation.{key}", "must be a permutation of 0, 1, 2")
        if "code" in orientation:
            check.str(orientation["code"], "input.orientation.code")
    elif orientation is not None:
        check.str(orientation, "input.orientation")


def _check_classes(check: _Checker, classes: Any) -> None:
    def one(entry: Any, where: str) -> None:
        entry = check.dict(entry, where)
        check.int(entry.get("value"), f"{where}.value", 1, 255)
        check.str(entry.get("key"), f"{where}.key")
        if "name" in entry:
            check.str(entry["name"], f"{where}.name")
        if "color" in entry:
            check.list(entry["color"], f"{where}.color", 3, lambda v, w: check.number(v, w, 0.0, 1.0))

    check.list(classes, "classes", None, one)


def _check_postprocessing(check: _Checker, settings: Any) -> None:
    if settings is None:
        return
    settings = check.dict(settings, "postprocessing")
    if settings.get("min_volume_mm3") is not None:
        check.number(settings["min_volume_mm3"], "postprocessing.min_volume_mm3", 0.0, 1e7)
    if settings.get("min_tumour_probability") is not None:
        check.number(settings["min_tumour_probability"], "postprocessing.min_tumour_probability", 0.0,
                     MAX_MIN_TUMOUR_PROBABILITY)
    if settings.get("min_enhancement") is not None:
        check.number(settings["min_enhancement"], "postprocessing.min_enhancement", 0.0, MAX_MIN_ENHANCEMENT)
    for key in ("fill_holes", "one_type_per_lesion"):
        if key in settings and not isinstance(settings[key], bool):
            check.fail(f"postprocessing.{key}", "must be true or false")


def _check_configuration(check: _Checker, configuration: Any, where: str) -> None:
    configuration = check.dict(configuration, where)
    network = check.dict(configuration.get("architecture"), f"{where}.architecture",
                         {"network_class_name", "arch_kwargs", "_kw_requires_import"})
    check.str(network.get("network_class_name"), f"{where}.architecture.network_class_name", frozenset({NETWORK_CLASS}))
    imports = check.list(network.get("_kw_requires_import"), f"{where}.architecture._kw_requires_import")
    for i, name in enumerate(imports):
        check.str(name, f"{where}.architecture._kw_requires_import[{i}]", frozenset(ALLOWED_CLASSES))
    check_arch_kwargs(check, network.get("arch_kwargs"), f"{where}.architecture.arch_kwargs")
    for key, choices in ALLOWED_PLAN_NAMES.items():
        if key == "normalization_schemes" and key in configuration:
            check.list(configuration[key], f"{where}.{key}", None, lambda v, w: check.str(v, w, choices))
        elif key.startswith(("preprocessor", "resampling")) and key in configuration:
            check.str(configuration[key], f"{where}.{key}", choices)
            if f"{key}_kwargs" in configuration:
                check.kwargs(configuration[f"{key}_kwargs"], f"{where}.{key}_kwargs", _RESAMPLING_KWARGS)
    if "inherits_from" in configuration:
        check.str(configuration["inherits_from"], f"{where}.inherits_from")


def _check_nnunet(check: _Checker, nnunet: Any) -> None:
    """The nnU-Net plans a model carries for fine-tuning: nnU-Net imports names from them."""
    if nnunet is None:
        return
    nnunet = check.dict(nnunet, "nnunet")
    mirror = nnunet.get("inference_allowed_mirroring_axes")
    if mirror is not None:
        check.list(mirror, "nnunet.inference_allowed_mirroring_axes", None, lambda v, w: check.int(v, w, 0, 2))
    if "plans" not in nnunet:  # an untrained model carries none; it cannot be fine-tuned
        return
    plans = check.dict(nnunet["plans"], "nnunet.plans")
    for key in ("image_reader_writer", "label_manager"):
        if key in plans:
            check.str(plans[key], f"nnunet.plans.{key}", ALLOWED_PLAN_NAMES[key])
    for key in ("transpose_forward", "transpose_backward"):
        if sorted(check.list(plans.get(key), f"nnunet.plans.{key}", 3)) != [0, 1, 2]:
            check.fail(f"nnunet.plans.{key}", "must be a permutation of 0, 1, 2")
    configurations = check.dict(plans.get("configurations"), "nnunet.plans.configurations")
    for name, configuration in configurations.items():
        _check_configuration(check, configuration, f"nnunet.plans.configurations.{name}")
    if "configuration" in nnunet:
        check.str(nnunet["configuration"], "nnunet.configuration", frozenset(configurations))


def validate_manifest(manifest: dict[str, Any], file_name: str) -> None:
    """Refuse a manifest whose fields are of the wrong type or range, or name a class or
    function outside the allow-lists (module docstring). `file_name` prefixes the message."""
    check = _Checker(file_name)
    check.str(manifest.get("name"), "name")
    if not isinstance(manifest.get("version"), (str, int, float)) or isinstance(manifest.get("version"), bool):
        check.fail("version", "must be a text")
    if not isinstance(manifest.get("weights_sha256"), str) or not SHA256.fullmatch(manifest["weights_sha256"]):
        check.fail("weights_sha256", "must be 64 lower-case hexadecimal digits")
    _check_architecture(check, manifest.get("architecture"))
    _check_input(check, manifest.get("input"))
    _check_classes(check, manifest.get("classes"))
    _check_postprocessing(check, manifest.get("postprocessing"))
    _check_nnunet(check, manifest.get("nnunet"))
    disclaimer = manifest.get("disclaimer")
    if disclaimer is not None:
        check.str(disclaimer, "disclaimer")
