"""What runs user code: experiments, plan, claim, the job's process, launchers, @cache."""
