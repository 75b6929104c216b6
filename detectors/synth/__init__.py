"""Seeded, physically motivated SAR and optical scene generator (numpy/scipy only).

Lives under ``detectors`` because training (``detectors.training``) and the pipelines' scene
writers both need it, and ``pipelines`` may import ``detectors`` but never the reverse.
"""
