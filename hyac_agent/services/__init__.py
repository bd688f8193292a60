"""Domain logic: deploying and invoking functions. Routes call these; these call the store."""
