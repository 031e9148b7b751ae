"""Jobs: planning a run's jobs (`planning`), the job loop each Map iteration runs (`loop`) and one adapter per
backend (`backends`)."""
