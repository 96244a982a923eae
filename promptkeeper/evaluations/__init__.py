"""Offline evaluation: suites, providers, scorers, runs and promotion gates."""
