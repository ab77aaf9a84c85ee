"""Parquet results -> tables, figures and one HTML report (see analysis/README.md).

    python -m analysis.report RESULTS -o report.html

load (I/O edge), memory (spreads, bootstrap, paper tables), sensitivity (beta(t), clocks, collapse),
figures (plotly), report (HTML), linear_model (Appendix G), clocks ("will this recipe forget?"),
synthetic (planted-effect data in the Parquet contract). Never imports ray or torch.
"""
