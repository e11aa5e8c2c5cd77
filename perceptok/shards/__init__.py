"""Dataset-scale tokenization into resumable Parquet shards (``perceptok tokenize``)."""

from perceptok.shards.read import decode_row, decode_rows, load_rows, metadata
from perceptok.shards.boxes import tokenize_boxes
from perceptok.shards.run import tokenize_depth
from perceptok.shards.store import TokenizeSummary
from perceptok.shards.sources import DepthItem, dataset_items, folder_items, image_items, manifest_items

__all__ = ["DepthItem", "TokenizeSummary", "dataset_items", "decode_row", "decode_rows", "folder_items", "image_items",
           "load_rows", "manifest_items", "metadata", "tokenize_boxes", "tokenize_depth"]
