"""The output layer: Parquet schemas and tables, figures (Altair, saved with vl-convert) and
the HTML pages, shared by every study."""
