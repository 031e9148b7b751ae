"""Results: output parsing, the join and the scores in one pass (`outputs`, `collect`, `evaluation`), the manifest and
its cost (`manifest`, `pricing`), the report page (`report`), writing them at the run's end (`finish`) and
notifications."""
