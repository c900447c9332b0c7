"""Rules of the graphql service: generated types, errors, query limits, DataLoaders."""
