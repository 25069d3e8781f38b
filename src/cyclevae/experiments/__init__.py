"""Paper experiments: one module per experiment of Fu et al. (NAACL 2019), each running its grid
of runs and writing its metrics, figures and report."""
