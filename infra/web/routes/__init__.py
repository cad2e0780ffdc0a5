"""The pages' routers: sign-in, cases, figures (dashboard, report, inspection pack)."""
