"""marshmallow schemas: <Thing>Schema (output), <Thing>CreateSchema (input), <Thing>QueryArgs."""
