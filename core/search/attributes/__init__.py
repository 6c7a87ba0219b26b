"""Attribute scorers (``score(image or embedding) -> {value: probability}``) and their cached artefact."""

from core.search.attributes.artefact import AttributeSet, Dimension, attributes_for, build_attributes
from core.search.attributes.base import Scorer, beats_chance
from core.search.attributes.colour import PALETTE, PixelColourScorer, rgb_to_lab
from core.search.attributes.heads import LinearHead, categorical_columns, train_head
from core.search.attributes.zeroshot import ZeroShotHead, validate, zero_shot_head

__all__ = ["PALETTE", "AttributeSet", "Dimension", "LinearHead", "PixelColourScorer", "Scorer", "ZeroShotHead",
           "attributes_for", "beats_chance", "build_attributes", "categorical_columns", "rgb_to_lab",
           "train_head", "validate", "zero_shot_head"]
