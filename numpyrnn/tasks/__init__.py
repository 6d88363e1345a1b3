"""Toy sequence tasks to train on, each seeded, with train/val/test splits and a baseline.

========== =============================================================== ==========
name       what                                                            metric
========== =============================================================== ==========
adding     add the two marked numbers of a sequence of T                   mse
copy       reproduce 10 symbols after T blanks                             loss (nats)
sentiment  sentiment of compositional reviews, or a user's CSV/TSV         accuracy
charlm     character-level language model of a text                        bpc
series     forecast the next value of a noisy sum of sines, or a recording mse
speech     who is speaking: JapaneseVowels' nine speakers (real data only)  accuracy
demand     the next half-hour of electricity demand (Taylor 2003; real)    MAPE (%)
anomaly    the anomaly in arterial blood pressure, by forecasting (real)    MAE
g2p        a word's phonemes from its letters: CMUdict, encoder-decoder    PER
addition   "535+61" -> "596": the encoder-decoder's sanity task (Keras)   accuracy
========== =============================================================== ==========
"""

import inspect

from .adding import AddingProblem
from .addition import Addition
from .anomaly import Anomaly
from .base import Batch, ExampleTask, Task
from .charlm import CharLanguageModel
from .copy import CopyMemory
from .demand import Demand
from .g2p import G2P
from .sentiment import Sentiment
from .series import Series
from .speech import Speech

TASKS = {task.name: task for task in (AddingProblem, CopyMemory, Sentiment, CharLanguageModel, Series, Speech,
                                      Demand, Anomaly, G2P, Addition)}


def make(name, **options):
    """A task by name (adding, copy, sentiment, charlm, series, speech, demand, anomaly, g2p,
    addition) with its options."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name!r}")
    return TASKS[name](**options)


def options_of(name) -> tuple:
    """The options task ``name`` takes (its constructor's keywords, the seed aside)."""
    return tuple(k for k in inspect.signature(TASKS[name].__init__).parameters if k not in ("self", "seed"))


def taking(option) -> list:
    """The names of the tasks that take ``option``."""
    return [name for name in TASKS if option in options_of(name)]


def upgrade_config(config):
    """A task's config (from a checkpoint or a figure's record) as today's code writes it: runs
    on real data recorded the generated data's sizes before (Rotten Tomatoes with train_size
    6000, ...), which do not apply and are dropped (:meth:`Task.applying`)."""
    if not isinstance(config, dict) or config.get("name") not in TASKS:
        return config
    options = {k: v for k, v in config.items() if k not in ("name", "seed")}
    head = {k: config[k] for k in ("name", "seed") if k in config}
    return {**head, **TASKS[config["name"]].applying(options)}


__all__ = ["TASKS", "make", "options_of", "taking", "upgrade_config", "Task", "ExampleTask", "Batch", "AddingProblem", "CopyMemory",
           "Sentiment", "CharLanguageModel", "Series", "Speech", "Demand", "Anomaly", "G2P", "Addition"]
