"""Local mode's emulated AWS: the synthesized app deployed into moto and run for real, without an AWS account.

- session.py        `local_aws()`: a session, everything below put together (start here);
- deploy.py         the template deployed into moto (LocalApp);
- lambda_runtime.py handlers run in-process, as Lambda runs them;
- events.py         the template's EventBridge rules delivering job-state events to their functions;
- faults.py         rehearsed faults (--fault STATE:ERROR:TIMES);
- moto_hooks.py     every hook into moto's private internals, and nothing else does;
- run.py            one run: upload, deliver, wait, read back (`run_file`);
- export.py         a run folder copied from emulated S3 to disk (--out).
The stand-in engines are in ../engines/, the authorization checks in ../authorization/.
"""
