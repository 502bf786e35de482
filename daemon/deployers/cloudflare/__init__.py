"""The Cloudflare Pages deployer and what belongs to it: the Pages API, live branches and the webhook."""
