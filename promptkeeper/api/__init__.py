"""HTTP plumbing shared by the routers: dependencies, the error handler, middleware."""
