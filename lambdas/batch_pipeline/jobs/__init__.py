"""Jobs: planning a run's jobs (`planning`), the job loop each Map iteration runs (`loop`), waiting for a job's end
on a task token (`tokens`) and one adapter per backend (`backends`)."""
