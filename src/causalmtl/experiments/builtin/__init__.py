"""The built-in experiments, one module each; importing a module registers its experiments.

Nothing here is imported by the infrastructure (``causalmtl.experiments`` config, registry,
store, runner, launchers, report builder): the registry imports these modules by name from
:data:`causalmtl.experiments.registry.BUILTIN_MODULES` on first use. A built-in experiment
uses the infrastructure and the shared helpers (``common``, ``hparams``, ``reporting``) like
any user-registered experiment would, and imports no other built-in experiment.
"""
