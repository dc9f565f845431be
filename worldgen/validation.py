"""The one validation of numbers at the edge: every value a person or a file hands worldgen
(CLI options, batch job fields, recipe fields, request objects, `worldgen serve` requests) is
checked here, with the same rules and the same one-line messages everywhere.

A number must be a real number (not a bool, not text), finite (NaN and inf are refused), and in its
field's range. Sizes also have a pixel limit, so a request that could not fit in memory is refused
before any work starts, with the limit stated in the error.

Standard library only: importable without torch or numpy (the HTTP server validates with it).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any, Optional

from .errors import UserInputError

# Panorama sizes -------------------------------------------------------------------------------------
MAX_SIDE_PX = 16384
# 16.8 megapixels (e.g. 16384x1024 or 8192x2048): about 0.8 GB of float32 RGB-D layers before any
# model activations. Larger panoramas are made by tiles of `worldgen refine` on a bigger machine.
MAX_PIXELS = 16_777_216
# Headless screenshots: the offscreen renderer allocates WIDTHxHEIGHT colour and depth buffers; GL
# drivers cap a side at 8192-16384 and abort (not raise) beyond it.
MAX_SCREENSHOT_SIDE = 8192
MAX_SCREENSHOT_PIXELS = 16_777_216
# Images read from disk (inputs, masks, layers): refused before decoding beyond this many pixels, so
# a PNG whose header claims 60000x60000 never allocates (Pillow's own bomb check is far higher).
MAX_DECODE_PIXELS = 4 * MAX_PIXELS

SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes 0..2**64-1
MIN_SPAN_DEG = 1.0
MAX_PROMPT_CHARS = 2000


def _mb(pixels: int, bytes_per_pixel: int) -> str:
    return f"{pixels * bytes_per_pixel / 2**30:.1f} GiB"


@dataclass(frozen=True)
class Rule:
    """The range of one numeric field. ``integer``: whole numbers only."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    hint: str = ""
    text: str = ""  # how to say the range when numbers would read badly (2**64-1 as 1.84467e+19)

    def describe(self) -> str:
        if self.text:
            return self.text
        kind = "a whole number" if self.integer else "a finite number"
        if self.lo is not None and self.hi is not None:
            if self.lo_open or self.hi_open:
                left, right = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
                return f"{kind} in {left}{self.lo:g}, {self.hi:g}{right}"
            return f"{kind} between {self.lo:g} and {self.hi:g}"
        if self.lo is not None:
            return f"{kind} {'above' if self.lo_open else 'of at least'} {self.lo:g}"
        if self.hi is not None:
            return f"{kind} {'below' if self.hi_open else 'of at most'} {self.hi:g}"
        return kind


RULES: dict[str, Rule] = {
    "guidance": Rule(0, 50, hint="7.5 is usual"),
    "steps": Rule(1, 1000, integer=True),
    "strength": Rule(0, 1, lo_open=True, hint="0.4 refines, 1.0 regenerates"),
    "scale": Rule(0, 8, lo_open=True, hint="2 doubles the size"),
    "span": Rule(MIN_SPAN_DEG, 360, hint="degrees"),
    "fov": Rule(0, 180, lo_open=True, hi_open=True, hint="degrees"),
    "seed": Rule(0, SEED_MAX, integer=True, text="a whole number between 0 and 2**64-1"),
    # Not just positive: a weight below float32's range (1e-47 is 0 there) leaves pixels whose weights sum
    # to 0, and the blend divides by that sum (a NaN world); 0.001 keeps every sum a normal float32.
    "weight": Rule(0.001, 100, hint="1 is the default; weights only matter where regions meet"),
    "feather": Rule(0, 360, hint="degrees"),
    "distance": Rule(0, 100_000, lo_open=True, hint="metres"),
    "metres": Rule(0, 100_000, lo_open=True, hint="metres"),
    "lift": Rule(-10_000, 10_000, hint="metres"),
    "angle": Rule(-3600, 3600, hint="degrees"),
    "pitch": Rule(-90, 90, hint="degrees"),
    "pixels": Rule(0, MAX_SIDE_PX, integer=True),
    "window_batch": Rule(1, 4096, integer=True),
    "max_vertices": Rule(1, 50_000_000, integer=True),
}


def check(field: str, value: Any, label: Optional[str] = None, rule: Optional[Rule] = None):
    """``value`` checked against the rule of ``field`` (see ``RULES``); returns it as float or int.

    ``label`` names the value in the message (``--guidance``, ``job 3: guidance``); the default is
    the field's name. Raises ``UserInputError`` (one line: the value, the rule, the usual value)."""
    rule = rule or RULES[field]
    label = field if label is None else label
    shown = _show(value)
    if label == "":  # a schema names the field itself (recipes): "must be ..., got X"
        try:
            return check(field, value, "\0", rule)
        except UserInputError as exc:
            text = str(exc).split(" ", 2)[2] if str(exc).startswith("\0 ") else str(exc)
            raise UserInputError(f"{text.rstrip()}, got {shown}" if "got" not in text else text) from None
    hint = f" ({rule.hint})" if rule.hint else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # numpy scalars are numbers too (recipes and tests pass them)
        if type(value).__module__ == "numpy" and hasattr(value, "item"):
            return check(field, value.item(), label, rule)
        raise UserInputError(f"{label} {shown} must be {rule.describe()}{hint}")
    if rule.integer:
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                raise UserInputError(f"{label} {shown} must be {rule.describe()}{hint}")
            value = int(value)
    elif not math.isfinite(value):
        raise UserInputError(f"{label} {shown} must be {rule.describe()}, not NaN or infinite{hint}")
    low_bad = rule.lo is not None and (value <= rule.lo if rule.lo_open else value < rule.lo)
    high_bad = rule.hi is not None and (value >= rule.hi if rule.hi_open else value > rule.hi)
    if low_bad or high_bad:
        raise UserInputError(f"{label} {shown} must be {rule.describe()}{hint}")
    return value if rule.integer else float(value)


def check_optional(field: str, value: Any, label: Optional[str] = None):
    return None if value is None else check(field, value, label)


def check_seed(value: Any, label: str = "seed") -> int:
    return check("seed", value, label)


def check_span(value: Any, label: str = "span") -> float:
    """A horizontal span in degrees: (0, 360], and at least MIN_SPAN_DEG (a span of 1e-300 degrees
    turns every pixel's azimuth into the same number)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        if not 0 < value <= 360:
            raise UserInputError(f"{label} {_show(value)} is outside (0, 360]; pass --span between 1 and 360")
        if value < MIN_SPAN_DEG:
            raise UserInputError(f"{label} {_show(value)} is below {MIN_SPAN_DEG:g} degree; pass --span between 1 and 360")
        return float(value)
    if isinstance(value, float):  # NaN or inf
        raise UserInputError(f"{label} {_show(value)} is outside (0, 360]; pass --span between 1 and 360")
    return check("span", value, label)


def check_size(width: Any, height: Any, what: str = "size", *, multiple: int = 8, max_side: int = MAX_SIDE_PX,
               max_pixels: int = MAX_PIXELS, fix: str = "generate smaller and use `worldgen refine --scale`") -> tuple[int, int]:
    """WIDTH x HEIGHT: whole, positive, multiples of ``multiple`` (the VAE's stride for panoramas),
    each side at most ``max_side`` and the product at most ``max_pixels``."""
    for side in (width, height):
        if isinstance(side, bool) or not isinstance(side, int):
            raise UserInputError(f"{what} {_show(width)}x{_show(height)}: sides must be whole numbers of pixels")
    for side, name in ((width, "width"), (height, "height")):
        if side <= 0 or side % multiple:
            need = f"a positive multiple of {multiple}" if multiple > 1 else "positive"
            raise UserInputError(f"{what} {width}x{height}: {name} must be {need} (e.g. 2048x512)")
        if side > max_side:
            raise UserInputError(f"{what} {width}x{height}: {name} exceeds {max_side} px; {fix}")
    if width * height > max_pixels:
        raise UserInputError(f"{what} {width}x{height} is {width * height / 1e6:.1f} megapixels, over the limit of "
                             f"{max_pixels / 1e6:.1f} MP (about {_mb(max_pixels, 48)} of working memory at that "
                             f"limit); {fix}")
    return width, height


def check_screenshot_size(width: Any, height: Any) -> tuple[int, int]:
    return check_size(width, height, "screenshot size", multiple=1, max_side=MAX_SCREENSHOT_SIDE,
                      max_pixels=MAX_SCREENSHOT_PIXELS, fix="pick a smaller --size such as 1920x1080")


def check_decode_size(width: int, height: int, source: str) -> None:
    """Before decoding an image file: refuse headers that claim more pixels than worldgen can use."""
    if width * height > MAX_DECODE_PIXELS or width > 4 * MAX_SIDE_PX or height > 4 * MAX_SIDE_PX:
        raise UserInputError(f"{source} claims {width}x{height} pixels ({width * height / 1e6:.0f} MP), over the "
                             f"{MAX_DECODE_PIXELS / 1e6:.0f} MP that worldgen decodes; resize it (or it is a "
                             f"decompression bomb)")


def check_prompt(prompt: Any, *, required: bool = True, label: str = "the prompt") -> str:
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise UserInputError(f"{label} must be text, got {_show(prompt)}")
    prompt = prompt.strip()
    if required and not prompt:
        raise UserInputError(f"{label} is empty; describe the world, e.g. \"a misty fjord at dawn\"")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserInputError(f"{label} has {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS}")
    return prompt


def parse_size_text(text: Any, label: str = "size") -> tuple[int, int]:
    """'2048x512' (or [2048, 512]) -> (2048, 512); the values are checked by ``check_size``."""
    if isinstance(text, (list, tuple)) and len(text) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in text):
        return int(text[0]), int(text[1])
    if isinstance(text, str):
        parts = text.strip().lower().split("x")
        if len(parts) == 2:
            try:
                return int(parts[0]), int(parts[1])
            except ValueError:
                pass
    raise UserInputError(f"{label} {_show(text)} is not WIDTHxHEIGHT, e.g. 2048x512")


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        value = int(value)  # 80.0 reads as 80: the same line whether a front end parsed a float or an int
    text = repr(value) if isinstance(value, str) else str(value)
    return printable(text if len(text) <= 60 else text[:57] + "...")


# Printing user-provided text --------------------------------------------------------------------------

def printable(text: Any) -> str:
    """``text`` safe for a terminal line: control and format characters (newlines, ESC sequences,
    bidi overrides, zero-width marks, line separators) become visible escapes, so a prompt or a file
    name can neither forge output lines nor send commands to the terminal."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == " " or ch.isprintable():
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif unicodedata.category(ch) in ("Zs",):
            out.append(" ")
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
    return "".join(out)


def check_option_values(options: dict) -> None:
    """Exporter options arrive as text (``-O voxel_size=nan``) or numbers (recipes): whatever each
    exporter accepts, NaN and infinity are never a usable setting, so they stop here for every format."""
    for name, value in options.items():
        try:
            number = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
        except ValueError:
            continue  # not a number: the exporter says what it wants
        if number is not None and not math.isfinite(number):
            raise UserInputError(f"-O {name}={value} is not a finite number; give a number such as {name}=1")
