"""make stress: crash, fuzz, load and attack docqa; reports/reliability.*"""
