"""Monthly closure-rate reports: figures computed in SQL from the history (versioned formulas), the PDF, its delivery."""
