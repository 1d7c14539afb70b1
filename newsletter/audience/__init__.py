"""The residents on the list: signup and its batching, roster import/export, the consent
lifecycle, bounces and mailto opt-outs.
"""
