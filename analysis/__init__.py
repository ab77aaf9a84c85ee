"""Parquet results -> tables, figures and one HTML report (see analysis/README.md).

    python -m analysis.report RESULTS -o report.html

load (I/O edge), memory (spreads, bootstrap, paper tables), sensitivity (beta(t), clocks),
collapse (like-with-like collapse score, its seed bootstrap and verdict), paper_check (SPEC
Section 5's numbers vs measured), findings (SPEC Section 5b's six claims as rules), design (what
was run beside the paper's design), bootstrap (the seed bootstrap), figures and paper_figures (plotly; Table 1, Figures 4 and 6 as
the paper lays them out), page and report (HTML), linear_model (Appendix G), clocks ("will this
recipe forget?"), synthetic (planted-effect data in the Parquet contract). Never imports ray or torch.
"""
