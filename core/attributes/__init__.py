"""Attribute scorers (``score(image or embedding) -> {value: probability}``) and their cached artefact."""

from .artefact import AttributeSet, Dimension, attributes_for, build_attributes
from .base import Scorer, beats_chance
from .colour import PALETTE, PixelColourScorer, rgb_to_lab
from .heads import LinearHead, categorical_columns, train_head
from .zeroshot import ZeroShotHead, validate, zero_shot_head

__all__ = ["PALETTE", "AttributeSet", "Dimension", "LinearHead", "PixelColourScorer", "Scorer", "ZeroShotHead",
           "attributes_for", "beats_chance", "build_attributes", "categorical_columns", "rgb_to_lab",
           "train_head", "validate", "zero_shot_head"]
