"""Screens of the rmtui app, one module each: the entry list, one entry, the coefficients, the regimes,
the rewrite view, help, glossary, dialogs, and the screen shown when a study cannot be opened.

A screen reads through ``app.service`` (rmtui/services.py) and renders; it computes no statistics and
imports no pandas, statsmodels or duckdb. It may import ``rmtui.widgets`` and ``analysis`` names it shows;
it never imports the app (navigation between screens goes through the app's methods) or another top
screen (contract ``front``)."""
