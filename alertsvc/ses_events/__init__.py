"""The SNS webhook: SES's bounces, complaints and deliveries, verified, then acted on."""
