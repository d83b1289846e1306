"""Checks: small rule classes that judge a FormReading; configured by rules/*.toml.

One class per kind of check, registered by name (``base.REGISTRY``):
``required``, ``choice``, ``pattern``, ``date``, ``number``, ``must_be_true``,
``email``, ``phone`` (fields.py); ``corporate_number`` (corporate.py);
``region`` (region.py); ``hours_total_positive``, ``hours_total_max``
(hours.py); ``seal_present``, ``seal_placement``, ``seal_color`` (seal.py); ``active_content``
(pdf.py).
Which fields they judge and the Japanese words of each problem are data in
rules/application.toml; ``mailbot.ruleset.load`` builds the chain.
"""
