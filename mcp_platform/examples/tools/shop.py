"""An example shop: four SQLAlchemy models exposed to the ORM tools, example data, and one custom tool.

Copy this file to start your own. What it shows:

- `expose_model(...)` makes a model reachable by list_models, query_records and the other ORM tools;
  `writable=True` also allows create_record, update_record and delete_record; `fields=[...]` hides columns.
- `@seed` fills the tables with example rows the first time they are empty.
- A custom tool sits next to the models and queries them through `ctx.backend(OrmBackend)`, which gives it the
  same read-only connection and statement timeout as the built-in tools.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from typing import Annotated

from pydantic import BaseModel, Field
from sqlalchemy import (
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    Text,
    Uuid,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mcp_platform import ToolContext, ToolError, tool
from mcp_platform.capabilities.orm import OrmBackend, expose_model, seed


class ShopBase(DeclarativeBase):
    """The shop's own metadata, so its tables are created apart from any other module's."""


class OrderStatus(enum.Enum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


# `internal_note` is left out of `fields`: the tools can neither read nor write it.
@expose_model(writable=True, fields=["id", "email", "name", "city", "external_id", "created_at"])
class Customer(ShopBase):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100), index=True)
    external_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=func.now())
    internal_note: Mapped[str | None] = mapped_column(String(500))

    orders: Mapped[list[Order]] = relationship(back_populates="customer")


@expose_model
class Product(ShopBase):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
    in_stock: Mapped[bool] = mapped_column(default=True)
    weight_kg: Mapped[float | None]
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)


@expose_model(writable=True)
class Order(ShopBase):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_customer_placed", "customer_id", "placed_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[OrderStatus] = mapped_column(
        Enum(OrderStatus, name="order_status", values_callable=lambda members: [m.value for m in members]),
        default=OrderStatus.PENDING,
    )
    placed_on: Mapped[dt.date] = mapped_column(Date)
    shipped_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(back_populates="order", cascade="all, delete-orphan")


@expose_model
class OrderItem(ShopBase):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int]
    unit_price: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()


_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken", "Radia",
          "Tim"]
_CITIES = ["Lisbon", "Oslo", None, "Lisbon", "Kyoto", None, "Oslo", "Quito", "Lisbon", None, "Kyoto", "Oslo"]
_PRODUCTS = [("KB-01", "Keyboard", "49.90", 0.9), ("MS-02", "Mouse", "19.99", 0.1), ("MN-27", "Monitor 27in",
             "229.00", 5.4), ("CB-USB", "USB-C cable", "9.50", None), ("DK-01", "Desk lamp", "34.00", 1.2),
             ("HS-10", "Headset", "79.00", 0.3), ("WC-HD", "Webcam", "59.99", 0.2), ("ST-01", "Laptop stand",
             "39.00", 1.8), ("MP-XL", "Mouse pad XL", "14.00", None), ("HB-04", "USB hub", "24.50", 0.15)]
_STATUSES = [OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.PENDING, OrderStatus.CANCELLED, OrderStatus.SHIPPED]


@seed
async def load_examples(session: AsyncSession) -> None:
    """12 customers, 10 products, 30 orders and their items; the same rows on every machine."""
    # No explicit ids: the database assigns them (1, 2, ...), so its sequences stay in step for later inserts.
    customers = [
        Customer(email=f"{name.lower()}@example.com", name=name, city=_CITIES[n],
                 external_id=uuid.uuid5(uuid.NAMESPACE_DNS, f"customer-{n + 1}.shop.example"),
                 created_at=dt.datetime(2024, 1, 1, 9, 0) + dt.timedelta(days=7 * n, minutes=13 * n))
        for n, name in enumerate(_NAMES)
    ]
    products = [
        Product(sku=sku, name=name, price=decimal.Decimal(price), in_stock=n % 4 != 3, weight_kg=weight,
                thumbnail=bytes([0x89, 0x50, 0x4E, 0x47, n]) if n % 3 == 0 else None)
        for n, (sku, name, price, weight) in enumerate(_PRODUCTS)
    ]
    session.add_all([*customers, *products])
    await session.flush()
    for n in range(30):
        status = _STATUSES[n % len(_STATUSES)]
        placed = dt.date(2024, 3, 1) + dt.timedelta(days=3 * n)
        order = Order(customer=customers[(n * 5) % len(customers)], status=status, placed_on=placed,
                      shipped_at=dt.datetime.combine(placed, dt.time(15, 30)) + dt.timedelta(days=1)
                      if status is OrderStatus.SHIPPED else None,
                      note="gift wrap, please" if n % 7 == 0 else None)
        for line in range(1 + n % 3):
            product = products[(n + 3 * line) % len(products)]
            order.items.append(OrderItem(product=product, quantity=1 + (n + line) % 4, unit_price=product.price))
        session.add(order)
        await session.flush()  # one order at a time, so ids follow the loop on every database


class CustomerTotal(BaseModel):
    customer_id: int
    name: str
    email: str
    orders: int
    total_spent: decimal.Decimal
    """Sum over the customer's orders that were not cancelled (a decimal string)."""


class TopCustomers(BaseModel):
    customers: list[CustomerTotal]


@tool(read_only=True, title="Top customers by spend")
async def top_customers(ctx: ToolContext, limit: Annotated[int, Field(ge=1, le=50)] = 5) -> TopCustomers:
    """The customers who spent the most, over all their orders that were not cancelled.

    Args:
        limit: How many customers to return.
    """
    spent = func.sum(OrderItem.quantity * OrderItem.unit_price, type_=Numeric(12, 2)).label("total_spent")
    statement = (
        select(Customer.id.label("customer_id"), Customer.name, Customer.email,
               func.count(func.distinct(Order.id)).label("orders"), spent)
        .join(Order, Order.customer_id == Customer.id)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .where(Order.status != OrderStatus.CANCELLED)
        .group_by(Customer.id, Customer.name, Customer.email)
        .order_by(spent.desc(), Customer.id)
        .limit(limit)
    )

    async def run(session: AsyncSession) -> TopCustomers:
        rows = (await session.execute(statement)).mappings().all()
        return TopCustomers(customers=[CustomerTotal.model_validate(dict(row)) for row in rows])

    return await ctx.backend(OrmBackend).read(run)


class CancelledOrder(BaseModel):
    order_id: int
    previous_status: str
    status: str


# JSON integers have no upper bound and the database's have one: bound every id in the signature, so an id out of
# range is an invalid argument the model can fix, never an OverflowError from the driver.
OrderId = Annotated[int, Field(ge=1, le=2**63 - 1)]


@tool(read_only=False, destructive=True, idempotent=True, title="Cancel an order")
async def cancel_order(ctx: ToolContext, order_id: OrderId) -> CancelledOrder:
    """Cancel an order that has not shipped yet. Refused while the `maintenance_mode` flag is on.

    Args:
        order_id: The order's id, as query_records shows it.
    """
    if ctx.flag("maintenance_mode"):
        raise ToolError("The shop is in maintenance mode (flag maintenance_mode): orders cannot change right now.")

    async def run(session: AsyncSession) -> CancelledOrder:
        order = await session.get(Order, order_id)
        if order is None:
            raise ToolError(f"No order has id {order_id}.")
        previous = order.status
        if previous is OrderStatus.SHIPPED:
            raise ToolError(f"Order {order_id} has shipped; it can no longer be cancelled.")
        order.status = OrderStatus.CANCELLED
        return CancelledOrder(order_id=order_id, previous_status=previous.value, status=order.status.value)

    return await ctx.backend(OrmBackend).write(run)
