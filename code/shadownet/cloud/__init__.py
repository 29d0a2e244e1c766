"""The platforms and object storage: what a job is given (platforms), s3:// staging (storage), job specs
(jobs) and submitting them (submit). Only the CLI imports this wing; the stages below it see local paths.
"""
