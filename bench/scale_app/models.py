"""A realistic tenant app for provisioning measurements (bench/scale_settings.py installs it).

30 tables: a catalog, customers, orders, invoices, inventory, support tickets... with FKs
(chains, self-references, many-to-many), indexes (plain, multi-column, partial, expression),
unique and check constraints, identity columns (BigAutoField) and table/column comments. Its
migrations add a data migration (RunPython), a standalone sequence used as a column default,
a view, a PL/pgSQL function and a trigger.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower


class Currency(models.Model):
    code = models.CharField(max_length=3, unique=True)
    name = models.CharField(max_length=50)

    class Meta:
        db_table_comment = "ISO 4217 currencies (seeded by a data migration)"


class Country(models.Model):
    code = models.CharField(max_length=2, unique=True)
    name = models.CharField(max_length=80, db_comment="English short name")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT)


class Category(models.Model):
    name = models.CharField(max_length=80)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE)
    slug = models.SlugField(unique=True)

    class Meta:
        indexes = [models.Index(Lower("name"), name="category_lower_name_idx")]


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200, db_index=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="product_price_gte_0")
        ]
        indexes = [
            models.Index(fields=["category", "-created"], name="product_cat_created_idx"),
            models.Index(
                fields=["name"], condition=models.Q(active=True), name="product_active_name_idx"
            ),
        ]


class Tag(models.Model):
    name = models.CharField(max_length=40, unique=True)
    products = models.ManyToManyField(Product, related_name="tags")


class Customer(models.Model):
    email = models.EmailField()
    name = models.CharField(max_length=120)
    country = models.ForeignKey(Country, on_delete=models.PROTECT)
    referred_by = models.ForeignKey("self", null=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="customer_email_ci_uniq"),
        ]


class Address(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    line1 = models.CharField(max_length=200)
    city = models.CharField(max_length=80)
    country = models.ForeignKey(Country, on_delete=models.PROTECT)
    is_default = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer"], condition=models.Q(is_default=True), name="one_default_address"
            )
        ]


class Warehouse(models.Model):
    code = models.CharField(max_length=10, unique=True)
    address = models.ForeignKey(Address, null=True, on_delete=models.SET_NULL)


class StockLevel(models.Model):
    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["warehouse", "product"], name="stock_unique"),
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="stock_qty_gte_0"),
        ]


class Order(models.Model):
    STATUSES = [("new", "new"), ("paid", "paid"), ("shipped", "shipped")]
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    # Filled from the scale_app_order_number_seq sequence (a default set by RunSQL).
    number = models.BigIntegerField(unique=True, null=True)
    status = models.CharField(max_length=10, choices=STATUSES, default="new")
    shipping_address = models.ForeignKey(Address, null=True, on_delete=models.SET_NULL)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT)
    total = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    placed = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["new", "paid", "shipped"]), name="order_status_ok"
            )
        ]
        indexes = [models.Index(fields=["customer", "status"], name="order_cust_status_idx")]


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="orderline_unique"),
        ]


class Invoice(models.Model):
    order = models.OneToOneField(Order, on_delete=models.PROTECT)
    issued = models.DateField()
    due = models.DateField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(due__gte=models.F("issued")), name="invoice_due_after_issue"
            )
        ]


class Payment(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    reference = models.CharField(max_length=64, unique=True)


class Refund(models.Model):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    reason = models.TextField(blank=True, db_comment="Free text shown to the customer")


class Supplier(models.Model):
    name = models.CharField(max_length=120, unique=True)
    country = models.ForeignKey(Country, on_delete=models.PROTECT)


class PurchaseOrder(models.Model):
    supplier = models.ForeignKey(Supplier, on_delete=models.PROTECT)
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT)
    ordered = models.DateField()


class PurchaseLine(models.Model):
    purchase_order = models.ForeignKey(PurchaseOrder, on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()


class Shipment(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE)
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT)
    tracking = models.CharField(max_length=64, blank=True, db_index=True)


class ShipmentItem(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE)
    line = models.ForeignKey(OrderLine, on_delete=models.CASCADE)
    quantity = models.PositiveIntegerField()


class Team(models.Model):
    name = models.CharField(max_length=80, unique=True)


class Agent(models.Model):
    team = models.ForeignKey(Team, on_delete=models.PROTECT)
    name = models.CharField(max_length=80)
    email = models.EmailField(unique=True)


class Ticket(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    order = models.ForeignKey(Order, null=True, on_delete=models.SET_NULL)
    assignee = models.ForeignKey(Agent, null=True, on_delete=models.SET_NULL)
    subject = models.CharField(max_length=200)
    priority = models.SmallIntegerField(default=3)
    # Kept current by the scale_app_touch trigger (RunSQL in 0002).
    updated = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(priority__gte=1, priority__lte=5), name="ticket_priority_1_5"
            )
        ]


class TicketMessage(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    author_agent = models.ForeignKey(Agent, null=True, on_delete=models.SET_NULL)
    body = models.TextField()
    sent = models.DateTimeField(auto_now_add=True)


class Coupon(models.Model):
    code = models.CharField(max_length=20, unique=True)
    percent = models.PositiveSmallIntegerField()
    orders = models.ManyToManyField(Order, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(percent__lte=100), name="coupon_pct_le_100")
        ]


class Review(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    stars = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True)

    class Meta:
        unique_together = [("product", "customer")]


class AuditEvent(models.Model):
    kind = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "at"], name="audit_kind_at_idx")]


class Setting(models.Model):
    key = models.CharField(max_length=80, primary_key=True)
    value = models.JSONField()

    def __str__(self) -> str:
        return self.key
