"""The default config files, installed as the package ``channelflow.defaults``.

This folder is the one copy of ``channelflow.toml`` and ``promotions.toml``: ``pyproject.toml``
maps the package ``channelflow.defaults`` to it (``[tool.setuptools.package-dir]``), so a wheel
carries them inside ``channelflow/defaults/`` and ``channelflow.config`` finds them with
``importlib.resources`` from any working directory. This file makes the package a regular one,
which an editable install needs. It is not a top-level ``config`` package of the install.
"""
