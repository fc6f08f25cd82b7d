"""The colour a patterned fabric shows on average: its ground colour and its ink, mixed by the
share of ink its pattern draws.

A striped or knitted garment is half ink, so its mean colour is not its ground (base) colour: a
red garment with stripes is on average a darker red, a black one with stripes a dark grey. The
colour check reads the garment's mean colour, which does not depend on where the pattern's lines
fall (a generator that draws them a pixel off reads the same), and compares it with this mix of
the requested colour instead of the colour itself.

The ink rule and the shares restate what ``training/data/patterns.py`` draws (the patterns of
``serving_contract.patterns``); ``tests/unit/test_fabric_colour.py`` holds the two together, so a
change to the texturing that is not made here fails there. This package cannot import the
training code (it never imports torch).
"""

from __future__ import annotations

import numpy as np

from serving_contract.palette import BACKGROUND_RGB, srgb_to_lab

#: CIELAB lightness below which a colour counts as dark and its ink is lighter (``training.data.patterns``)
DARK_LIGHTNESS = 40.0
#: dark colours: the ink is mixed this far toward white (``training.data.patterns.LIGHTEN``)
LIGHTEN = 0.4
#: light colours: the ink is the colour at this fraction of its value (``training.data.patterns.DARKEN``)
DARKEN = 0.6

#: the mean ink fraction of each pattern's field over one period (ink 1, ground 0; gingham's
#: single bands 0.5): stripes, denim and knit are 2 px of ink every 4 px, checks two 2-in-6 bands
#: at half ink each, dots a 2x2 px dot per 6x6 px cell
INK_SHARE: dict[str, float] = {
    "solid": 0.0,
    "stripes": 1 / 2,
    "checks": 1 / 3,
    "dots": 1 / 9,
    "denim": 1 / 2,
    "knit": 1 / 2,
}


def ink_rgb(rgb: tuple[int, int, int]) -> np.ndarray:
    """The pattern's ink for a ground colour: the same hue, lighter for a dark colour, else darker."""
    colour = np.asarray(rgb, np.float64)
    if srgb_to_lab(colour)[0] < DARK_LIGHTNESS:
        return colour + (np.asarray(BACKGROUND_RGB, np.float64) - colour) * LIGHTEN
    return colour * DARKEN


def fabric_rgb(rgb: tuple[int, int, int], pattern: str) -> np.ndarray:
    """The mean colour of ground ``rgb`` drawn in ``pattern`` (a name of ``INK_SHARE``; raises
    ``KeyError`` for another), before the garment's shading."""
    share = INK_SHARE[pattern]
    return (1.0 - share) * np.asarray(rgb, np.float64) + share * ink_rgb(rgb)
