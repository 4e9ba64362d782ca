"""freshcast's Streamlit app: the planner's view of demand, stockouts, forecasts, models and jobs.

Serve it with ``freshcast ui``. Each page is one module in ``app/views/`` (not ``pages/``,
which Streamlit would also serve as legacy pages, bypassing the navigation); the app only
reads what the daily job wrote (see :mod:`pipelines.queries`) and does no modelling.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="freshcast", page_icon=":material/nutrition:", layout="wide")

pages = {
    "Demand": [
        st.Page(VIEWS / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(
            VIEWS / "series.py",
            title="Series explorer",
            icon=":material/query_stats:",
            url_path="series",
        ),
        st.Page(
            VIEWS / "stockouts.py",
            title="Stockouts & lost demand",
            icon=":material/remove_shopping_cart:",
            url_path="stockouts",
        ),
        st.Page(
            VIEWS / "forecasts.py",
            title="Forecasts",
            icon=":material/trending_up:",
            url_path="forecasts",
        ),
    ],
    "Operations": [
        st.Page(
            VIEWS / "models.py", title="Models", icon=":material/model_training:", url_path="models"
        ),
        st.Page(VIEWS / "jobs.py", title="Jobs", icon=":material/schedule:", url_path="jobs"),
    ],
}

with st.sidebar:
    st.markdown("### :material/nutrition: freshcast")
    st.caption("Censored-demand recovery and 7-day forecasts for fresh retail.")

st.navigation(pages).run()
