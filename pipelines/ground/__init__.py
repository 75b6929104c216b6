"""Ground segment: packet receiver, SQLite alert store, Standard Webhooks delivery, reference consumer.

Data path: downlinked packets -> :mod:`receiver` -> :mod:`store` -> :mod:`webhooks` -> the
consumer (:mod:`consumer` is the reference one). See each module's docstring for the why.
"""
