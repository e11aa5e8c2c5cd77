"""Reading depth maps: single files in every common encoding, folders, and manifests."""

from perceptok.io.depth_files import DEPTH_ENCODINGS, DEPTH_KINDS, DepthMap, read_depth, read_depth_folder
from perceptok.io.manifest import ManifestEntry, read_manifest

__all__ = [
    "DEPTH_ENCODINGS",
    "DEPTH_KINDS",
    "DepthMap",
    "ManifestEntry",
    "read_depth",
    "read_depth_folder",
    "read_manifest",
]
