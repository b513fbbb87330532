"""Widgets of the rmtui app: the virtual entry list (renders only the visible lines), tables, the diff
view, the footer and single-line helpers.

The bottom of the front: widgets import no screen, the app or the commands (contract ``front``), and
no pandas, statsmodels or duckdb."""
