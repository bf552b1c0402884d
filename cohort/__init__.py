"""Closed-loop cohort simulation: synthetic patients from a cited patient model, monitored by a
protocol through the incremental engine, and the metrics a guideline committee asks for."""
