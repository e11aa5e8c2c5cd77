"""Reading depth maps: single files in every common encoding, folders, and manifests. Names are
imported on first use."""

from perceptok._lazy import lazy_names

_LAZY = {
    "DEPTH_ENCODINGS": "perceptok.io.formats",
    "DEPTH_KINDS": "perceptok.io.formats",
    "DepthCodes": "perceptok.io.depth_files",
    "DepthMap": "perceptok.io.depth_files",
    "ManifestEntry": "perceptok.io.manifest",
    "read_depth": "perceptok.io.depth_files",
    "read_depth_codes": "perceptok.io.depth_files",
    "read_depth_folder": "perceptok.io.depth_files",
    "read_manifest": "perceptok.io.manifest",
    "pad_square": "perceptok.io.square",
    "square_offset": "perceptok.io.square",
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
__all__ = sorted(_LAZY)
