"""Marshmallow schemas: load schemas validate requests, dump schemas shape
responses. Every load schema rejects unknown fields."""
