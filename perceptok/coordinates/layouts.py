"""How each system writes boxes and points as text: one ``Layout`` per convention.

A layout is data, not code: the renderer, the strict and lenient parsers
(``perceptok.coordinates.grammar``) and the plugin's decoding constraint all derive from it.
An image's text is ``text_open + separator.join(elements) + text_close``; an element is

- ``label + group_open + group_sep.join(items) + group_close`` in a layout with groups
  (``group_sep`` set: consecutive items with the same label share one element);
- ``[label] + item + [label] + item_end`` otherwise (the label before or after the item);

and an item is ``item_open + point_sep.join(point_open + coord_sep.join(coordinates) +
point_close) + item_close``. A label is ``label`` with ``{0}`` replaced by the label's text
(``{0}`` may repeat, as in Molmo's ``alt="dog">dog``); an unlabelled item writes ``label_absent``.

=========  =============================================================================
aurora     ``dog (<PIXEL_12>,<PIXEL_40>,<PIXEL_200>,<PIXEL_301>), cat (…)``
paligemma  ``<loc0100><loc0020><loc0900><loc0500> dog ; <loc…>… cat``
florence2  ``dog<loc_12><loc_40><loc_600><loc_901>cat<loc_…>…``
kosmos2    ``<phrase>dog</phrase><object><patch_index_0044><patch_index_0863></object>``
qwen2vl    ``<|object_ref_start|>dog<|object_ref_end|><|box_start|>(12,40),(600,901)<|box_end|>``
qwen25vl   ``[{"bbox_2d": [12, 40, 200, 301], "label": "dog"}, …]``, points ``{"point_2d": [x, y]}``
qwen3vl    the same JSON, in 0–1000
gemini     ``[{"box_2d": [40, 12, 301, 200], "label": "dog"}, …]`` (y first), points ``{"point": [y, x]}``
internvl   ``<ref>dog</ref><box>[[12, 40, 200, 301], [5, 5, 9, 9]]</box>``
shikra     ``dog[0.012,0.040,0.200,0.301;0.005,0.005,0.009,0.009]``
molmo      ``<point x="12.5" y="40.0" alt="dog">dog</point>`` (points only; ``<points x1=…>`` is read too)
=========  =============================================================================
"""

from __future__ import annotations

import dataclasses

_JSON_FORBIDDEN = '"\\' + "".join(map(chr, range(32)))


@dataclasses.dataclass(frozen=True)
class Layout:
    item_open: str = ""
    item_close: str = ""
    # (item_open, item_close) of a point item where they differ from a box's (JSON keys).
    point_item: tuple[str, str] | None = None
    point_open: str = ""
    point_close: str = ""
    coord_sep: str = ""  # between the coordinates of one point
    point_sep: str = ""  # between the two corners of a box
    separator: str = ""  # between elements
    label: str = "{0}"  # a label's text around the label ({0}, may repeat)
    label_before: bool = True  # the label precedes its item (else follows it)
    label_absent: str = ""  # written where an unlabelled item's label would be
    item_end: str = ""  # after an item and its label (JSON's closing brace)
    group_open: str = ""
    group_close: str = ""
    group_sep: str = ""  # between the items of a group; set, items with one label share a group
    text_open: str = ""  # around the whole text of an image (JSON's list brackets)
    text_close: str = ""
    label_forbidden: str = "<>"  # characters a label may not hold in this layout
    kinds: tuple[str, ...] = ("box", "point")  # the item kinds the convention writes
    expand_points_tag: bool = False  # read Molmo's grouped <points x1=… y1=… …> tags too

    def __post_init__(self) -> None:
        if "{0}" not in self.label:
            raise ValueError(f"a layout's label must hold '{{0}}', got {self.label!r}")
        if self.group_sep and not self.label_before:
            raise ValueError("grouped layouts write the label before the group")

    @property
    def grouped(self) -> bool:
        return bool(self.group_sep)

    def item_delimiters(self, kind: str) -> tuple[str, str]:
        """(item_open, item_close) of a ``kind`` item ("box" or "point")."""
        if kind == "point" and self.point_item is not None:
            return self.point_item
        return self.item_open, self.item_close


def _json(box_key: str, point_key: str) -> Layout:
    """The JSON list that Qwen2.5-VL, Qwen3-VL and Gemini answer with: ``json.dumps`` of
    ``[{key: [...], "label": ...}, ...]`` with its default separators."""
    return Layout(item_open=f'{{"{box_key}": [', item_close="]", point_item=(f'{{"{point_key}": [', "]"),
                  coord_sep=", ", point_sep=", ", separator=", ", label=', "label": "{0}"', label_before=False,
                  item_end="}", text_open="[", text_close="]", label_forbidden=_JSON_FORBIDDEN)


LAYOUTS: dict[str, Layout] = {
    "aurora": Layout(item_open="(", item_close=")", coord_sep=",", point_sep=",", separator=", ",
                     label="{0} ", label_forbidden="<>(),"),
    "paligemma": Layout(separator=" ; ", label=" {0}", label_before=False, label_forbidden="<>;"),
    "florence2": Layout(),
    "kosmos2": Layout(item_open="<object>", item_close="</object>", label="<phrase>{0}</phrase>"),
    "qwen2vl": Layout(item_open="<|box_start|>", item_close="<|box_end|>", point_open="(",
                      point_close=")", coord_sep=",", point_sep=",",
                      label="<|object_ref_start|>{0}<|object_ref_end|>"),
    # QwenLM/Qwen3-VL qwen-vl-finetune/GROUNDING_DATA_FORMAT.md (bbox_2d / point_2d, "label").
    "qwen25vl": _json("bbox_2d", "point_2d"),
    "qwen3vl": _json("bbox_2d", "point_2d"),
    # Gemini API docs, "Object detection" (ai.google.dev/gemini-api/docs/image-understanding):
    # box_2d is [ymin, xmin, ymax, xmax]; Gemini Robotics-ER points are {"point": [y, x]}.
    "gemini": _json("box_2d", "point"),
    # InternVL chat data format: <ref>label</ref><box>[[x1, y1, x2, y2], ...]</box> (boxes only).
    "internvl": Layout(item_open="[", item_close="]", coord_sep=", ", point_sep=", ", label="<ref>{0}</ref>",
                       group_open="<box>[", group_close="]</box>", group_sep=", ", kinds=("box",)),
    # Shikra's PlainBoxFormatter: "[" + ";".join(",".join(f"{v:.3f}")) + "]" after the expression.
    "shikra": Layout(coord_sep=",", point_sep=",", separator=" ", group_open="[", group_close="]",
                     group_sep=";", label_forbidden="<>[];,"),
    # Molmo's point formatter: <point x="…" y="…" alt="label">label</point>, percent, one decimal.
    "molmo": Layout(item_open='<point x="', item_close='"', coord_sep='" y="', separator=" ",
                    label=' alt="{0}">{0}', label_before=False, label_absent=' alt="">', item_end="</point>",
                    label_forbidden='<>"', kinds=("point",), expand_points_tag=True),
}
