"""Readers of patient data (timelines, lab CSVs, FHIR bundles and Bulk Data NDJSON), behind one
format registry: the one owner of how rxwatch reads a patient's inputs."""
