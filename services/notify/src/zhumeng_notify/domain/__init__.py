"""Pure rules: templates, recipient resolution, channel choice."""
