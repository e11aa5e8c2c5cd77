"""Tokenize the real boxes of one COCO-format image in every box convention, check the round
trip, and draw the decoded boxes of the coarsest convention (Kosmos-2's 32×32 grid) on the image.

    .venv/bin/python examples/boxes_in_every_convention.py [COCO_FILE IMAGE_NAME]

Without arguments it uses ``../shared/data/boxes/voc100/instances.json`` and ``2007_000032.jpg``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torchvision.ops import box_convert

from perceptok import BoxTokenizer
from perceptok.coordinates import presets_for
from perceptok.viz import draw_box_preview


def main(coco_path: str, file_name: str) -> None:
    coco = json.loads(Path(coco_path).read_text())
    image = next(im for im in coco["images"] if im["file_name"] == file_name)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    canvas = (image["height"], image["width"])
    boxes = box_convert(torch.tensor([a["bbox"] for a in anns], dtype=torch.float64), "xywh", "xyxy")
    labels = [names[a["category_id"]] for a in anns]
    for preset in presets_for("box"):
        tok = BoxTokenizer.from_preset(preset)
        text = tok.to_text(tok.encode(boxes, canvas_size=canvas, labels=labels))
        back = tok.decode(tok.parse(text).ids, canvas_size=canvas)
        err = (back - boxes).abs().max().item()
        print(f"{preset:10s} max error {err:5.2f} px  {text[:90]}…")
        if preset == "kosmos2":
            out = draw_box_preview(Path(coco_path).parent / "images" / file_name, boxes, back, labels,
                                   f"{Path(file_name).stem}_kosmos2.png")
            print(f"drew {out}")


DEFAULT = (Path(__file__).resolve().parents[2] / "shared" / "data" / "boxes" / "voc100" / "instances.json",
           "2007_000032.jpg")

if __name__ == "__main__":
    args = sys.argv[1:3] or [str(DEFAULT[0]), DEFAULT[1]]
    if len(args) != 2 or not Path(args[0]).is_file():
        sys.exit(f"usage: {Path(__file__).name} [COCO_FILE IMAGE_NAME]  (no COCO file at {args[0]})")
    main(*args)
