from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "demo.customers"
    label = "customers"
