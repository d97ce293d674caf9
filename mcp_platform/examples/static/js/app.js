// Acme Store: fills the product list from data/products.csv.
"use strict";

async function loadProducts() {
  const response = await fetch("data/products.csv");
  const [header, ...rows] = (await response.text()).trim().split("\n");
  const columns = header.split(",");
  return rows.map((row) => Object.fromEntries(row.split(",").map((value, i) => [columns[i], value])));
}

function render(products) {
  const list = document.getElementById("products");
  for (const product of products) {
    const item = document.createElement("li");
    item.textContent = `${product.name}: $${product.price}`;
    if (Number(product.stock) === 0) item.classList.add("out-of-stock");
    list.appendChild(item);
  }
}

loadProducts().then(render).catch((error) => console.error("could not load products", error));
