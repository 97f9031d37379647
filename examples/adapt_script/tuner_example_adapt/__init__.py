"""The adapt-your-script example: ``plain_train.py`` turned into the ``adapt-script`` task."""

from tuner_example_adapt.task import Task

__all__ = ["Task"]
