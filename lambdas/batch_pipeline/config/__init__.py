"""The app's configuration: `app` is the typed model of `cdk.json` (pipelines, model catalog, endpoints) checked at
synth; `runtime` is what a Lambda receives of it (each pipeline with its model resolved, and the prices)."""
