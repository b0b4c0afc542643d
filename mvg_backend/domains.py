"""The imaging domains the pack knows, shared by every stage (prompts, ROI, templates)."""

DOMAINS = ("chest_xray", "fundus", "skin", "other")
