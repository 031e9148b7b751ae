"""Results: output parsing and the join (`outputs`, `collect`), scoring (`evaluation`), the manifest and its cost
(`manifest`, `pricing`), the report page (`report`) and notifications."""
