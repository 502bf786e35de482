"""Typed services: what the HTTP handlers and the dashboard's pages call, received through Litestar's `Provide`.

Each service is a narrow class over the domain (intake, publish, fleet, ops); the composition root
(`daemon.wiring`) builds them once around the runtime's edges. Handlers and pages never see the runtime.
"""
