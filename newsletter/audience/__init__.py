"""The residents on the list: signup and its batching, roster import/export, the consent
lifecycle, bounces and mailto opt-outs, and every read of a resident's personal data
(``personal_data``: the read and its access-log entry together).
"""
