"""What tests share that is not a fixture: builders of fake tables (fake_results); the fixtures that
hold them once per session are in tests/conftest.py."""
