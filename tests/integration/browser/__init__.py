"""The admin in a real headless Chromium (Debian's, driven by Playwright), screenshots in var/screenshots/."""
